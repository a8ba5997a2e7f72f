"""Chat Cagou custom actions. Importing the package loads and validates the fiche, so a
malformed fiche stops the action server at start-up with an error naming the field."""
