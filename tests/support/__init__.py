"""What the tests share, in one place.

- ``paths``: ``ROOT`` (the repository) and ``POLICIES`` (the shipped policy folder).
"""
