"""The staff page by area: sign-in, queue (and tracking a LAPOR! id), case, outbox,
recap. Each module holds one mixin of :class:`bridge.web.views.StaffPage`."""
