"""Production never prints PIN mailers to the development spool."""

from chave.tests.test_production_settings import _start


def test_production_refuses_the_pin_mailer_spool_and_defaults_to_post_only(tmp_path):
    refused = _start(tmp_path, CHAVE_COUNTER_PRINTER="spool")
    assert refused.returncode != 0 and "CHAVE_COUNTER_PRINTER" in refused.stderr
    assert _start(tmp_path).returncode == 0
