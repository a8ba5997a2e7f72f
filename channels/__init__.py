"""Chat Cagou's input channels, referenced by module path in credentials.yml.

- `channels.messenger.MessengerInput`: Rasa's facebook channel, hardened (docs/channels.md).
- `channels.socketio.SocketIOInput`: Rasa's socketio channel with allowed origins enforced.
"""
