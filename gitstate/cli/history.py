"""Commands that answer from history and move work in and out: log, rollback, import, export."""
