from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_jobs", "0014_key_limits")]

    operations = [
        migrations.AddField(
            model_name="worker",
            name="min_concurrency",
            field=models.PositiveIntegerField(
                blank=True, null=True, verbose_name="min concurrency"
            ),
        ),
        migrations.AddField(
            model_name="worker",
            name="max_concurrency",
            field=models.PositiveIntegerField(
                blank=True, null=True, verbose_name="max concurrency"
            ),
        ),
        migrations.AddField(
            model_name="worker",
            name="connections",
            field=models.PositiveIntegerField(
                blank=True, null=True, verbose_name="database connections"
            ),
        ),
    ]
