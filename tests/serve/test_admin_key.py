"""Where the admin key comes from, and the keys refused before the service starts."""

import pytest

from landmark_jax.errors import UsageError
from landmark_jax.serve.admin import ADMIN_KEY_ENV, admin_key


def test_admin_key_from_file_else_environment_else_none(tmp_path, monkeypatch):
  monkeypatch.delenv(ADMIN_KEY_ENV, raising=False)
  assert admin_key(None) is None  # no key: no admin route
  monkeypatch.setenv(ADMIN_KEY_ENV, " from-the-environment-0123 \n")
  assert admin_key(None) == "from-the-environment-0123"
  key_file = tmp_path / "key"
  key_file.write_text("from-the-file-0123456789\nignored second line\n")
  assert admin_key(key_file) == "from-the-file-0123456789"  # the file wins


@pytest.mark.parametrize("text, message", [("short\n", "5 characters"), ("", "0 characters")])
def test_short_or_empty_keys_are_refused(tmp_path, text, message):
  key_file = tmp_path / "key"
  key_file.write_text(text)
  with pytest.raises(UsageError, match=message):
    admin_key(key_file)


def test_unreadable_key_file_is_named(tmp_path):
  with pytest.raises(UsageError, match="cannot read it"):
    admin_key(tmp_path / "missing")
