"""Load generation: pure arrival schedules (:mod:`.arrivals`) and the asyncio driver (:mod:`.driver`)."""
