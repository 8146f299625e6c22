"""`python -m openseg_cli` = the `openseg` command."""

from openseg_cli.cli.app import main

if __name__ == "__main__":
    main()
