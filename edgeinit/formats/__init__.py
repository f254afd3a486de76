"""Small text formats edgeinit edits in place (env files, INI), as pure functions."""
