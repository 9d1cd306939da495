from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Integrator",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=200)),
                ("username", models.CharField(max_length=64, unique=True)),
                ("secret_hash", models.CharField(max_length=64)),
                ("application_id", models.CharField(max_length=100, unique=True)),
                ("active", models.BooleanField(default=True)),
                ("created_at", models.DateTimeField()),
                ("rotated_at", models.DateTimeField(blank=True, null=True)),
            ],
        ),
    ]
