"""Input checks that raise one clear `dacapo.errors.InputError`: `arrays` (metadata and
values of arrays) and `paths` (where an output may be written)."""
