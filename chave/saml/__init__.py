"""The SAML 2.0 identity provider: a door into the federation (see :mod:`chave.saml.views`)."""

import warnings

from cryptography.utils import CryptographyDeprecationWarning

# pysaml2 names cryptography's CFB mode (for XML encryption, which Chave does not use) where it moved from.
warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning, module=r"saml2\.")
