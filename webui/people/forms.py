"""The people forms: CSRF and input bounds (the rules themselves are the engine's)."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length

from workflow.roles import ROLES


class _Roles(SelectMultipleField):
    def pre_validate(self, form) -> None:  # unknown roles are refused by the engine, by name
        pass


class CreateUserForm(FlaskForm):
    username = StringField(validators=[DataRequired(), Length(max=64)])
    display_name = StringField(validators=[Length(max=120)])
    password = PasswordField(validators=[DataRequired(), Length(max=256)])
    roles = _Roles(choices=list(ROLES))


class ChangeUserForm(FlaskForm):
    """One change per submit: the button pressed (`change`) says which."""

    display_name = StringField(validators=[Length(max=120)])
    roles = _Roles(choices=list(ROLES))
    password = PasswordField(validators=[Length(max=256)])
    confirm_revoke = BooleanField()
