"""``gew shell``: the prompt_toolkit front end over the debugger core (repl), and the rich
renderables both front ends print command outputs with (render)."""
