"""Custom Rasa NLU components (referenced from config.yml): text cleaning, the customer's
situation (abroad, language) and per-clause intents with the scope signals the actions use."""

from components.rasa_speedups import install

# Before the model loads: every process that loads it imports this package first (config.yml).
install()
