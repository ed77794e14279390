FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Static files are baked into the image: every container that serves them has them.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput
RUN useradd --create-home investiq && mkdir -p /app/var && chown investiq /app/var
USER investiq
EXPOSE 8000
CMD ["gunicorn", "investiq.wsgi", "-c", "gunicorn.conf.py"]
