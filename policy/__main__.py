"""The real-estate-ai policy pack: `pulumi preview --policy-pack policy` (mandatory in test and prod, CI passes it).

The engine runs this directory (pulumi.policy's runpy puts it first on the path), so the rules are the `guardrails`
package beside this file and nothing outside policy/ is imported: the pack can be published as it is.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from guardrails.pack import PACK, policies

PolicyPack(name=PACK, policies=policies(), enforcement_level=EnforcementLevel.MANDATORY)
