"""Starts the chat server: `python run.py --help` lists every setting."""

from server.main import main

if __name__ == "__main__":
    main()
