"""What the SQL backends share: the row mapping (``rows``) and every read (``reads``)."""
