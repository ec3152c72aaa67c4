"""What crosses the wire: the one serializer and the one error table (client and server)."""
