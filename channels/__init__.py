"""Chat Cagou's input channels, referenced by module path in credentials.yml.

- `channels.messenger.MessengerInput`: Rasa's facebook channel, hardened (docs/channels.md).
- `channels.socketio.SocketIOInput`: Rasa's socketio channel with allowed origins enforced.

Imported inside a Rasa process (`rasa run` loads its processor before the channels of
credentials.yml), the package bounds the conversation sessions (`channels/sessions.py`).
Elsewhere (tests, the console) Rasa's processor is not loaded, and nothing is changed.
"""

import sys

if "rasa.core.processor" in sys.modules:
    from channels.sessions import install as _bound_sessions

    _bound_sessions()
