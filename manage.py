#!/usr/bin/env python3
from chave.cli import main

if __name__ == "__main__":
    main()
