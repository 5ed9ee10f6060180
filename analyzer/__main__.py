"""``python -m analyzer`` runs the command line."""

from analyzer.cli.main import entry

if __name__ == "__main__":
    entry()
