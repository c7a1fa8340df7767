from django.db import migrations


class Migration(migrations.Migration):
    """The log model's name no longer collides with django-eventstream's Event (#14).

    Not managed: the table realtime_event is the trigger's, and keeps its name.
    """

    dependencies = [("realtime", "0010_token_prefix_and_expiry")]

    operations = [migrations.RenameModel("Event", "EventLogRow")]
