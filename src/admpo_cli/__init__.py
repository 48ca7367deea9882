"""admpo: the Any-step Dynamics Model and ADMPO-ON/OFF as a command-line tool."""

__version__ = "0.1.0"
