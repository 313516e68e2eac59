"""The staff actions and queue views: the only writer of cases (pull sync aside)."""
