from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("realtime", "0022_alerts"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="scope",
            field=models.CharField(
                choices=[("read", "read"), ("act", "act")], default="read", max_length=4
            ),
        ),
    ]
