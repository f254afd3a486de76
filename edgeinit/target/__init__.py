"""The only way to the target system: path confinement, atomic writes, ids, commands.

Nothing in this package imports the rest of edgeinit, so it can be tested (and trusted)
on its own.
"""
