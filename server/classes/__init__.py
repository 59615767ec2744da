"""Teaching classes: one long-lived sandbox per student, each with its own token and terminal.

``spec`` is what a class is asked to be (`sandbox class create`'s flags);
``room`` a class as the daemon holds it (its seats); ``table`` every class
of the daemon, their start, reset, extension, end and the TTL's reaper;
``recording`` each student's session as an asciicast v2 file. The routes
are ``server.routes.classes`` (the API) and the console's class pages.
"""
