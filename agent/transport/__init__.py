"""Wire protocols: FreeSWITCH event socket (ESL), the audio websocket, and PCM codecs."""
