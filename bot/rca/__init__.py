"""Root-cause analysis: the evidence model, the rule analyzer and the Claude agent."""
