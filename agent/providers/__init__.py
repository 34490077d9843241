"""Speech and language providers behind the ports in storeagent.agent.ports."""
