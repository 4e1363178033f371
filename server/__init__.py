"""The application factory, settings and process entry of the chat server."""
