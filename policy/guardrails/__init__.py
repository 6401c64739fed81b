"""The pack's rules, self-contained so the pack can be published on its own: nothing here imports from outside
policy/ (the program's settings import the shared contract from here instead)."""
