"""What a cold start imports: modules only rare mail needs are left to the mail that needs them."""

from __future__ import annotations

import subprocess
import sys

RARE = ("forwarder.mail.body", "forwarder.mail.notice", "email.policy", "email.headerregistry")


def test_handler_import_and_wiring_leave_rare_modules_unloaded() -> None:
    # GIVEN a fresh interpreter, WHEN it imports the handler and wires the service as a cold start does
    code = (
        "import sys\n"
        "from forwarder.app import lambda_handler\n"
        "from forwarder.wiring import build_service\n"
        "from forwarder.config import load_settings, Settings\n"
        "build_service(load_settings(Settings))\n"
        f"print(','.join(m for m in {RARE!r} if m in sys.modules))\n"
    )
    env = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "FORWARDER_DOMAIN": "dev.example.com",
        "FORWARDER_BUCKET": "mail",
        "FORWARDER_ALIAS_PATH": "/forwarder/aliases",
    }
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    # THEN none of the modules only an over-long line or an oversize mail needs has been loaded
    assert result.stdout.splitlines()[-1] == ""
