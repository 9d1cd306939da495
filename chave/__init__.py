"""Chave: an open-source Digital Mobile Key."""
