"""Custom Rasa NLU components (referenced from config.yml): text cleaning, the customer's
situation (abroad, language) and per-clause intents with the scope signals the actions use."""
