"""Web push: ``prepare.py`` turns subscriptions into an encrypted feed and sends it once,
``crypto.py`` holds VAPID and RFC 8291 encryption, ``cli.py`` is ``rafale webpush``."""
