"""CLI command groups; each module registers its sub-commands on the main parser."""
