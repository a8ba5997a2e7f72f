"""Conversation review console for support staff (in place of Rasa X).

Reads Rasa's SQL tracker store (table `events`) and keeps its own tables, all prefixed
`console_`, in the same database. See docs/console.md.
"""
