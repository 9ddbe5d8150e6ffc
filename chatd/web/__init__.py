"""
The web client: the daemon's own page, a WebSocket way in to the chat
protocol, and the shared files over HTTP.
"""
