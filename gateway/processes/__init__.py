"""Process APIs: the sagas behind the mutations and the event handlers."""
