"""The application layer: what the box can do, for the CLI, the web UI and the sync agent.

Each function takes the open catalog (or the App) and the acting account's name,
checks the request against the domain's rules, and returns typed rows or raises
the project's errors. Views and commands only parse, call one function, and present.
"""
