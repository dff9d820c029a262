"""Set-up and demo commands run by the Makefile (`python -m scripts.<name>`)."""
