"""Store error messages: a password never shown, and the message around it kept whole."""

from __future__ import annotations

import pytest

from wattbill.store.errors import StoreUnavailable, mask_secrets


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("cannot connect to postgresql://u:Pw-1@h:5432/db: refused", "cannot connect to postgresql://u:***@h:5432/db: refused"),
        ("cannot connect to postgresql://u@h:1/db?password=S3c:ret: connection failed",
         "cannot connect to postgresql://u@h:1/db?password=***: connection failed"),
        ("postgresql://u@h/db?sslmode=require&password=S3c&application_name=x",
         "postgresql://u@h/db?sslmode=require&password=***&application_name=x"),
        ("host=127.0.0.1 port=1 password=S3c user=u", "host=127.0.0.1 port=1 password=*** user=u"),
        ("host=h password='a b\\' c' dbname=d", "host=h password=*** dbname=d"),
    ],
)
def test_mask_secrets(text: str, shown: str) -> None:
    assert mask_secrets(text) == shown
    assert "S3c" not in str(StoreUnavailable(text)) and "Pw-1" not in str(StoreUnavailable(text))
