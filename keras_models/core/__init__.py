"""What every part of the project shares: its one-line errors, safe file writing, and a record of the machine."""
