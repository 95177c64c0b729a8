"""System APIs: one async actor per back-office system, each owning its connector."""
