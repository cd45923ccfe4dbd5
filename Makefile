# The quick start (see README.md): both create .venv on first use.
.PHONY: demo test

demo:
	bash dev.sh demo

test:
	bash dev.sh test
