"""What both front ends show: the rich renderables of the debugger's immutable views.

Place in the pipeline: gewtui.debugger builds view values (gewtui.debugger.view); the shell
prints the renderables made here and the TUI's panels paint them, so the two front ends say
the same thing the same way and neither imports the other. Imports the debugger's view
types and rich, nothing of Textual or prompt_toolkit.
"""
