"""The real-estate-ai policy pack: `pulumi preview --policy-pack policy` (mandatory in test and prod, CI passes it).

The pack runs with policy/ as its working directory: the repository root goes on the path so the rules can share
settings' definitions (image grammar, prod floors).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policy.pack import PACK, policies  # noqa: E402

PolicyPack(name=PACK, policies=policies(), enforcement_level=EnforcementLevel.MANDATORY)
