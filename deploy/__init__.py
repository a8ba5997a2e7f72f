"""Production deployment of Chat Cagou: several Rasa instances behind nginx, PostgreSQL
tracker store, Redis lock store (docs/production.md)."""
