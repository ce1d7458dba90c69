"""`git deploy serve`: the HTTP front end (Starlette), beside commands/ and calling the same
services. Imported only by the serve command, so no other command pays for its libraries."""
