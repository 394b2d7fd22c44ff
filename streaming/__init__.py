"""The live half of the pipeline: WebSocket ingestion and the Kafka feature consumer.

Features themselves are computed only by the ``features`` package; this package moves
records between the WebSocket, Kafka and disk.
"""
