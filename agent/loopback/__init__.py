"""Plays FreeSWITCH's side of both wires (outbound ESL + the audio module), for the demo and tests."""
