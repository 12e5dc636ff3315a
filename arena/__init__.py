"""The arena: pairwise voting between clips and Bradley–Terry ratings."""
