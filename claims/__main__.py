"""`python -m claims` is the `claims` command."""

from claims.cli.main import main

if __name__ == "__main__":  # not when a spawned process of a scoring pool imports this module
    main()
