"""``python -m genmat`` — the ``genmat`` command (what torchrun starts: ``torchrun -m genmat train …``)."""

from genmat.cli import main

if __name__ == "__main__":
    main()
